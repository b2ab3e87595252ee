import {CHECKS} from './checks/index.js'
import {CollectOptions, MachineFacts, collectFacts} from './collect.js'
import {nvidiaGpus, rdmaUserspaceBlocked, usableRdmaPortCount} from './derive.js'
import {plural} from './format.js'
import {CHECK_GROUP_OF, CHECK_IDS, CheckId, CheckStatus, DoctorCheck, DoctorReport, Verdict} from './types.js'

/** The doctor: probe the machine (or a --root tree), judge every check, roll up a verdict. */
export async function runDoctor(options: CollectOptions = {}): Promise<DoctorReport> {
  return judge(await collectFacts(options))
}

/** Pure: facts → report. */
export function judge(facts: MachineFacts): DoctorReport {
  const checks = CHECK_IDS.map((id) => runCheck(id, facts))
  const counts: Record<CheckStatus, number> = {ok: 0, warn: 0, fail: 0, skip: 0}
  for (const c of checks) counts[c.status]++
  return {verdict: verdictOf(checks), headline: headline(facts, checks), root: facts.root, captured: facts.captured, checks, counts}
}

/**
 * One check's defect must not hide the other eleven findings: it becomes a skip that says it is
 * hpd's fault (sysfs of an unusual machine can break an assumption).
 */
function runCheck(id: CheckId, facts: MachineFacts): DoctorCheck {
  try {
    return CHECKS[id](facts)
  } catch (error) {
    return {
      id,
      group: CHECK_GROUP_OF[id],
      title: id,
      status: 'skip',
      summary: `internal error in this check: ${(error as Error).message}`,
      hint: 'This is a defect in hpd; report it with the output of `hpd doctor --json`.',
      data: {},
    }
  }
}

/** fail if any check failed, warn if any warned; skips count as neither (they are reported, not judged). */
export function verdictOf(checks: readonly DoctorCheck[]): Verdict {
  if (checks.some((c) => c.status === 'fail')) return 'fail'
  if (checks.some((c) => c.status === 'warn')) return 'warn'
  return 'ok'
}

/** One plain sentence on what the machine means for `hpd serve`'s KV-cache transfers. */
function headline(facts: MachineFacts, checks: readonly DoctorCheck[]): string {
  const gpus = nvidiaGpus(facts).length
  const rdmaDevices = facts.rdma.length
  const usablePorts = usableRdmaPortCount(facts)
  const gpudirect = checks.find((c) => c.id === 'gpudirect')
  if (gpus === 0 && rdmaDevices === 0) {
    return 'No GPU and no RDMA device: hpd serve runs its CPU kernels and moves KV cache over shared memory (same host) or TCP (across hosts) only.'
  }
  if (rdmaDevices === 0 || usablePorts === 0) {
    const rdma =
      rdmaDevices === 0
        ? 'no RDMA device'
        : rdmaUserspaceBlocked(facts)
          ? `${plural(rdmaDevices, 'RDMA device')} that user space cannot open (no /dev/infiniband/uverbs*)`
          : `${plural(rdmaDevices, 'RDMA device')} but no usable port`
    return `${gpus > 0 ? plural(gpus, 'GPU') : 'No GPU'}, ${rdma}: hpd serve moves KV cache over shared memory (same host) or TCP (across hosts) only.`
  }
  const ports = plural(usablePorts, 'usable RDMA port')
  if (gpus === 0) return `No GPU, ${ports}: hpd serve moves host-memory KV cache over RDMA across hosts and shared memory within one.`
  if (gpudirect?.status === 'ok') {
    return `${plural(gpus, 'GPU')}, ${ports}, GPUDirect RDMA via ${String(gpudirect.data.path)}: KV cache can move GPU to NIC directly.`
  }
  return `${plural(gpus, 'GPU')}, ${ports}, no working GPUDirect RDMA: KV transfers over RDMA stage through host memory.`
}
