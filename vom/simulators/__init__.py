"""Stand-ins for the platforms no machine of ours can reach, for the demo, the tests and the benchmarks.

- ``libvirt_node``: libvirt ``test:///`` node files (a whole fake KVM host in one XML file);
- ``rhev``: an oVirt/RHEV-M REST API v4 simulator, reached by the real ``ovirtsdk4`` over HTTP;
- ``hyperv_replay``: captured PowerShell JSON of Hyper-V servers, replayed at the driver's transport.

Each follows the real engine as its documentation says; where they differ, the simulator is wrong.
"""
