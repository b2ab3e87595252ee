import {Flags} from '@oclif/core'

import {HpdCommand} from '../cli/hpd-command.js'
import type {DoctorReport} from '../doctor/types.js'

export default class Doctor extends HpdCommand<DoctorReport> {
  static override summary = 'Check whether this machine is ready for hybrid prefill/decode serving.'

  static override description = `Checks GPUs, RDMA ports, GPUDirect, PCIe links, GPU/NIC NUMA affinity, memlock, hugepages, /dev/shm, container limits, UCX transports and hpd's native addon. Each check reports ok, warn, fail or skip (a missing tool is a skip, never ok).

Exit code 0 when no check failed; 4 (HPD_DOCTOR_FAILED) when one did. With --json a failed verdict is an error envelope whose error.details holds the full report.

--root DIR reads /sys, /proc and /dev under DIR (a captured tree of another machine); tool outputs captured there go in DIR/.hpd-doctor/ (nvidia-smi.txt, ucx_info-v.txt, ucx_info-d.txt).`

  static override examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json', '<%= config.bin %> doctor --root ./node17-capture']

  static override flags = {
    root: Flags.directory({
      description: 'read sysfs/procfs/dev under DIR instead of / (a captured tree of another machine)',
      env: 'HPD_DOCTOR_ROOT',
      helpValue: 'DIR',
    }),
  }

  async run(): Promise<DoctorReport> {
    const {flags} = await this.parse(Doctor)
    // Lazy imports keep `hpd <other command>` from paying for the doctor, and the doctor from paying for Ink when piped.
    const present = this.jsonEnabled() ? undefined : (await import('../ui/doctor-render.js')).prepareDoctorRenderer()
    const {runDoctor, doctorFailedError} = await import('../doctor/index.js')
    const report = await runDoctor({root: flags.root})
    await present?.(report)
    if (report.verdict === 'fail') throw doctorFailedError(report)
    return report
  }
}
