module seine.dev/cmd/seine-exec

go 1.19
