module seine.dev/cmd/seine-cni

go 1.19
