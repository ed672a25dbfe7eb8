"""Pages of the provisioning app: golden images, provisioning requests, storage savings, disks and clones."""
