"""The PowerShell the Hyper-V driver runs: fixed scripts, whose only inputs are bound parameters."""

from __future__ import annotations

__all__ = ["DISCOVERY_SCRIPT", "HOST_VMS_SCRIPT", "VM_STATE_SCRIPT"]


# Runs on Windows PowerShell 5.1 (Server 2016/2019/2022) and PowerShell 7. Enums are written as
# their names ("$x" casts to the name), because the numbers behind some of them changed between
# Windows versions; the parser still accepts numbers for output of other scripts/captures. The
# script takes no input at all. A VM that cannot be read is reported with an "Error" and skipped,
# and a failure of the whole script is printed as {"Error": …} instead of an error stream, so the
# caller always gets one JSON document.
DISCOVERY_SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
function Get-VomVhd([string]$Path) {
    try { $vhd = Get-VHD -Path $Path } catch { return [ordered]@{ Error = $_.Exception.Message } }
    $chain = @(); $parent = $vhd.ParentPath; $depth = 0
    while ($parent -and $depth -lt 64) {
        $chain += $parent; $depth++
        try { $parent = (Get-VHD -Path $parent).ParentPath } catch { $parent = $null }
    }
    [ordered]@{
        VhdFormat = "$($vhd.VhdFormat)"; VhdType = "$($vhd.VhdType)"; ParentPath = $vhd.ParentPath
        Size = $vhd.Size; FileSize = $vhd.FileSize; Chain = $chain
    }
}
try {
    $vmHost = Get-VMHost
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $volumes = @(Get-CimInstance -ClassName Win32_Volume | Where-Object { $_.Name -and $_.DriveType -eq 3 } |
        ForEach-Object { [ordered]@{
            Name = $_.Name; Label = $_.Label; FileSystem = $_.FileSystem; Capacity = $_.Capacity
            FreeSpace = $_.FreeSpace; DeviceID = $_.DeviceID } })
    $vms = @(foreach ($vm in @(Get-VM)) {
        try {
            $disks = @(foreach ($d in @(Get-VMHardDiskDrive -VM $vm)) {
                $vhd = $null
                if ($d.Path -and $null -eq $d.DiskNumber) { $vhd = Get-VomVhd $d.Path }
                [ordered]@{
                    ControllerType = "$($d.ControllerType)"; ControllerNumber = $d.ControllerNumber
                    ControllerLocation = $d.ControllerLocation; Path = $d.Path; DiskNumber = $d.DiskNumber
                    Vhd = $vhd }
            })
            $dvds = @(foreach ($d in @(Get-VMDvdDrive -VM $vm)) {
                [ordered]@{
                    ControllerType = "$($d.ControllerType)"; ControllerNumber = $d.ControllerNumber
                    ControllerLocation = $d.ControllerLocation; Path = $d.Path }
            })
            $snaps = @(foreach ($s in @(Get-VMSnapshot -VM $vm)) {
                [ordered]@{
                    Name = $s.Name; Id = "$($s.Id)"; CreationTime = $s.CreationTime
                    ParentSnapshotName = $s.ParentSnapshotName; SnapshotType = "$($s.SnapshotType)"
                    Notes = $s.Notes; HardDrives = @($s.HardDrives | ForEach-Object { $_.Path }) }
            })
            $nics = @(foreach ($n in @(Get-VMNetworkAdapter -VM $vm)) {
                [ordered]@{
                    Name = $n.Name; MacAddress = $n.MacAddress; SwitchName = $n.SwitchName
                    DynamicMacAddressEnabled = $n.DynamicMacAddressEnabled; IPAddresses = @($n.IPAddresses) }
            })
            [ordered]@{
                Name = $vm.Name; Id = "$($vm.Id)"; State = "$($vm.State)"; Status = $vm.Status
                Generation = $vm.Generation; Version = $vm.Version; ProcessorCount = $vm.ProcessorCount
                MemoryAssigned = $vm.MemoryAssigned; MemoryStartup = $vm.MemoryStartup
                MemoryMinimum = $vm.MemoryMinimum; MemoryMaximum = $vm.MemoryMaximum
                DynamicMemoryEnabled = $vm.DynamicMemoryEnabled; Uptime = $vm.Uptime
                Heartbeat = "$($vm.Heartbeat)"; IsClustered = $vm.IsClustered; Notes = $vm.Notes
                Path = $vm.Path; ParentSnapshotName = $vm.ParentSnapshotName
                AutomaticStartAction = "$($vm.AutomaticStartAction)"
                HardDrives = $disks; DvdDrives = $dvds; Snapshots = $snaps; NetworkAdapters = $nics }
        } catch {
            [ordered]@{ Name = $vm.Name; Id = "$($vm.Id)"; Error = $_.Exception.Message }
        }
    })
    [ordered]@{
        Host = [ordered]@{
            ComputerName = $vmHost.ComputerName; FullyQualifiedDomainName = $vmHost.FullyQualifiedDomainName
            LogicalProcessorCount = $vmHost.LogicalProcessorCount; MemoryCapacity = $vmHost.MemoryCapacity
            VirtualHardDiskPath = $vmHost.VirtualHardDiskPath; VirtualMachinePath = $vmHost.VirtualMachinePath
            OSCaption = $os.Caption; OSVersion = $os.Version; OSBuildNumber = $os.BuildNumber
            EnvironmentOSVersion = "$([Environment]::OSVersion.Version)" }
        Volumes = $volumes
        VMs = $vms
    } | ConvertTo-Json -Depth 6 -Compress
} catch {
    [ordered]@{ Error = [ordered]@{
        Message = $_.Exception.Message; FullyQualifiedErrorId = $_.FullyQualifiedErrorId
        Category = "$($_.CategoryInfo.Category)" } } | ConvertTo-Json -Compress
}
"""

# The one input is bound as a parameter ($VmId), never formatted into the text.
VM_STATE_SCRIPT = r"""
param([string]$VmId)
$ErrorActionPreference = 'Stop'
$vm = Get-VM -Id $VmId
[ordered]@{ Id = "$($vm.Id)"; Name = $vm.Name; State = "$($vm.State)"; Status = $vm.Status } | ConvertTo-Json -Compress
"""

# The host's identity and its VMs (id, name, state): what the environment check and "where does
# this VM run" need, without the disks, checkpoints and NICs of a discovery. With -VmId only that
# VM (none when the host does not know it). The one input is bound as a parameter, never formatted in.
HOST_VMS_SCRIPT = r"""
param([string]$VmId)
$ErrorActionPreference = 'Stop'
$vmHost = Get-VMHost
$os = Get-CimInstance -ClassName Win32_OperatingSystem
if ($VmId) { $vms = @(Get-VM | Where-Object { "$($_.Id)" -eq $VmId }) } else { $vms = @(Get-VM) }
[ordered]@{
    Host = [ordered]@{
        ComputerName = $vmHost.ComputerName; FullyQualifiedDomainName = $vmHost.FullyQualifiedDomainName
        OSCaption = $os.Caption; OSVersion = $os.Version }
    VMs = @($vms | ForEach-Object { [ordered]@{ Id = "$($_.Id)"; Name = $_.Name; State = "$($_.State)" } })
} | ConvertTo-Json -Depth 4 -Compress
"""
