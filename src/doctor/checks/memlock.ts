import {MachineFacts} from '../collect.js'
import {formatBytes} from '../format.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'Locked-memory limit (ulimit -l)'

/** UCX's docs ask for at least 128 MB; RDMA registration pins every host byte a region holds. */
export const MEMLOCK_MIN_BYTES = 128 * 1024 * 1024

const RAISE_HINT =
  'Raise it to unlimited: `ulimit -l unlimited` (the hard limit permitting), LimitMEMLOCK=infinity in a systemd unit, `* - memlock unlimited` in /etc/security/limits.conf, or `docker run --ulimit memlock=-1`.'

export function checkMemlock(facts: MachineFacts): DoctorCheck {
  const {memlockSoftBytes: soft, memlockHardBytes: hard, capIpcLock} = facts.limits
  const rdma = facts.rdma.length > 0
  const data = {softBytes: soft ?? null, hardBytes: hard ?? null, unlimited: soft === null, capIpcLock: capIpcLock ?? null, rdmaPresent: rdma}
  if (soft === undefined) {
    return result('memlock', TITLE, 'skip', '/proc/self/limits is unreadable', data, 'Check with `ulimit -l`; RDMA wants unlimited.')
  }
  if (soft === null) return result('memlock', TITLE, 'ok', 'unlimited', data)
  const limit = formatBytes(soft)
  if (!rdma) {
    return result('memlock', TITLE, 'ok', `${limit}: only RDMA registration pins memory, and there is no RDMA device`, data)
  }
  if (capIpcLock) {
    return result('memlock', TITLE, 'ok', `${limit}, but the process has CAP_IPC_LOCK, which RDMA registration honours instead of the limit`, data)
  }
  if (soft < MEMLOCK_MIN_BYTES) {
    return result('memlock', TITLE, 'fail', `${limit} with RDMA devices present: registering KV-cache regions fails with "Cannot allocate memory"`, data, RAISE_HINT)
  }
  return result('memlock', TITLE, 'warn', `${limit}: host-memory regions larger than that cannot be registered for RDMA`, data, RAISE_HINT)
}
