import {RootFs} from '../root-fs.js'

/** Resource limits and capabilities of this process, which the workers it starts inherit. */
export interface LimitsFacts {
  /** RLIMIT_MEMLOCK soft limit in bytes; null = unlimited; undefined = /proc/self/limits unreadable. */
  readonly memlockSoftBytes: number | null | undefined
  readonly memlockHardBytes: number | null | undefined
  /** Effective capabilities from /proc/self/status, undefined when unreadable. */
  readonly capIpcLock: boolean | undefined
  readonly capSysPtrace: boolean | undefined
}

const CAP_IPC_LOCK = 14n
const CAP_SYS_PTRACE = 19n

export async function probeLimits(fs: RootFs): Promise<LimitsFacts> {
  const [limits, status] = await Promise.all([fs.readText('/proc/self/limits'), fs.readText('/proc/self/status')])
  const memlock = parseMemlock(limits)
  const capEff = parseCapEff(status)
  return {
    memlockSoftBytes: memlock?.softBytes,
    memlockHardBytes: memlock?.hardBytes,
    capIpcLock: capEff === undefined ? undefined : ((capEff >> CAP_IPC_LOCK) & 1n) === 1n,
    capSysPtrace: capEff === undefined ? undefined : ((capEff >> CAP_SYS_PTRACE) & 1n) === 1n,
  }
}

/** 'Max locked memory   8388608   8388608   bytes' → {softBytes, hardBytes}; 'unlimited' → null. */
export function parseMemlock(text: string | undefined): {softBytes: number | null; hardBytes: number | null} | undefined {
  const line = text?.split('\n').find((l) => l.startsWith('Max locked memory'))
  if (!line) return undefined
  const [soft, hard] = line.slice('Max locked memory'.length).trim().split(/\s+/u)
  const value = (v: string | undefined): number | null => (v === 'unlimited' ? null : Number(v))
  const softBytes = value(soft)
  const hardBytes = value(hard)
  if (Number.isNaN(softBytes) || Number.isNaN(hardBytes)) return undefined
  return {softBytes, hardBytes}
}

function parseCapEff(text: string | undefined): bigint | undefined {
  const m = /^CapEff:\s*([\da-f]+)$/imu.exec(text ?? '')
  return m ? BigInt(`0x${m[1]}`) : undefined
}
