import {MachineFacts} from '../collect.js'
import {nvidiaGpus} from '../derive.js'
import {CheckStatus, DoctorCheck} from '../types.js'
import {SHM_MIN_BYTES} from './shm.js'
import {result} from './result.js'

const TITLE = 'Container'

interface Need {
  readonly flag: string
  readonly given: boolean
  readonly why: string
  /** What a missing need costs: fail = a device hpd cannot use at all; warn = slower or fragile. */
  readonly severity: Exclude<CheckStatus, 'ok' | 'skip'>
}

export function checkContainer(facts: MachineFacts): DoctorCheck {
  const c = facts.container
  if (c.runtime === null) {
    return result('container', TITLE, 'ok', 'not in a container (no /.dockerenv, /run/.containerenv or container cgroup)', {runtime: null, evidence: [], needs: []})
  }
  const needs: Need[] = []
  const rdma = facts.rdma.length > 0
  if (rdma) {
    needs.push({flag: '--device=/dev/infiniband', given: c.devInfiniband.some((d) => d.startsWith('uverbs')), severity: 'fail',
      why: 'the RDMA NICs in /sys/class/infiniband are unusable without their /dev/infiniband/uverbs* nodes; UCX silently falls back to TCP'})
    const l = facts.limits
    needs.push({flag: '--ulimit memlock=-1', given: l.memlockSoftBytes === null || l.capIpcLock === true, severity: 'warn',
      why: 'RDMA registration pins memory against the locked-memory limit'})
  }
  if (nvidiaGpus(facts).length > 0) {
    needs.push({flag: '--gpus all', given: c.devNvidia.some((d) => /^nvidia(ctl|\d+)$/u.test(d)), severity: 'fail',
      why: 'the GPUs need /dev/nvidia* (NVIDIA Container Toolkit)'})
  }
  const shm = facts.memory.shm.sizeBytes
  if (shm !== undefined) {
    needs.push({flag: '--shm-size=8g (or --ipc=host)', given: shm >= SHM_MIN_BYTES, severity: 'warn',
      why: 'same-host KV regions are mapped through /dev/shm and SysV IPC'})
  }
  if (facts.limits.capSysPtrace !== undefined) {
    needs.push({flag: '--cap-add=SYS_PTRACE', given: facts.limits.capSysPtrace, severity: 'warn',
      why: 'UCX\'s cma transport reads peer memory with process_vm_readv, which needs ptrace rights'})
  }
  const missing = needs.filter((n) => !n.given)
  const data = {runtime: c.runtime, evidence: c.evidence, needs, devInfiniband: c.devInfiniband, devNvidia: c.devNvidia}
  const where = `${c.runtime} container (${c.evidence.join(', ')})`
  if (missing.length === 0) {
    const given = needs.map((n) => n.flag)
    return result('container', TITLE, 'ok', `${where}, given what hpd needs here${given.length ? `: ${given.join(', ')}` : ''}`, data)
  }
  const status = missing.some((n) => n.severity === 'fail') ? 'fail' : 'warn'
  return result('container', TITLE, status, `${where} lacks ${missing.map((n) => n.flag).join(', ')}`, data,
    `Start it with ${missing.map((n) => `${n.flag} (${n.why})`).join('; ')}.`)
}
