import {MachineFacts} from '../collect.js'
import {formatBytes} from '../format.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'Shared memory (/dev/shm)'

/** Below this, same-host KV regions of a real model do not fit (Docker's default is 64 MB). */
export const SHM_MIN_BYTES = 1024 ** 3

const SHM_HINT = 'Give the container `--shm-size=8g` (UCX\'s advice) or `--ipc=host`; on a host, `mount -o remount,size=8G /dev/shm`.'

export function checkShm(facts: MachineFacts): DoctorCheck {
  const s = facts.memory.shm
  const data = {mounted: s.mounted ?? null, fsType: s.fsType ?? null, sizeBytes: s.sizeBytes ?? null, sizeSource: s.sizeSource}
  if (s.mounted === undefined) return result('shm', TITLE, 'skip', '/proc/mounts is unreadable', data)
  if (!s.mounted) {
    return result('shm', TITLE, 'warn', '/dev/shm is not mounted: UCX\'s posix shared-memory transport cannot map same-host regions', data,
      'Mount a tmpfs on /dev/shm (`mount -t tmpfs -o size=8G tmpfs /dev/shm`).')
  }
  if (s.sizeBytes === undefined) return result('shm', TITLE, 'skip', `/dev/shm is ${s.fsType ?? 'mounted'} but its size is unknown`, data)
  const size = formatBytes(s.sizeBytes)
  if (s.sizeBytes < SHM_MIN_BYTES) {
    return result('shm', TITLE, 'warn', `${size} ${s.fsType}: same-host KV regions UCX maps through /dev/shm cannot exceed it`, data, SHM_HINT)
  }
  return result('shm', TITLE, 'ok', `${size} ${s.fsType}`, data)
}
