// Every suite's environment. Tests start thousands of short-lived Node processes (CNI plugins, probe clients,
// the lab's processes): with NODE_EXTRA_CA_CERTS set, each would parse the machine's CA bundle at start-up
// (about 30 ms of CPU apiece). Nothing under test needs it: the lab's API server has its own CA.
delete process.env.NODE_EXTRA_CA_CERTS;
