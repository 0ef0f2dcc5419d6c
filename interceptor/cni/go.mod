module switchyard.dev/interceptor/cni

go 1.22

require (
	github.com/containernetworking/cni v1.2.3
	golang.org/x/sys v0.20.0
)

require github.com/vishvananda/netns v0.0.4 // indirect
