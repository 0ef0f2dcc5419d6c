module switchyard.dev/lab/relay

go 1.22
