/**
 * The doctor's result model. A report is a list of checks, each with a status, a one-line
 * finding (`summary`), a fix (`hint`, only when not ok) and machine-readable `data`; the verdict
 * rolls them up. These types ARE the `hpd doctor --json` result (see README.md in this folder).
 */

/** ok: ready · warn: works, but slow or fragile · fail: will break · skip: could not be checked (reason in summary). */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip'

export type Verdict = 'ok' | 'warn' | 'fail'

export const CHECK_IDS = [
  'host',
  'gpu',
  'rdma',
  'gpudirect',
  'pcie',
  'numa-affinity',
  'memlock',
  'hugepages',
  'shm',
  'container',
  'ucx',
  'hpd-native',
] as const

export type CheckId = (typeof CHECK_IDS)[number]

/** How the checklist is grouped on screen; the order here is the order shown. */
export const CHECK_GROUPS = ['host', 'accelerators', 'network', 'limits', 'hpd'] as const
export type CheckGroup = (typeof CHECK_GROUPS)[number]

export const GROUP_TITLES: Readonly<Record<CheckGroup, string>> = {
  host: 'Host',
  accelerators: 'GPUs and PCIe',
  network: 'RDMA and UCX',
  limits: 'Limits and container',
  hpd: 'hpd',
}

export const CHECK_GROUP_OF: Readonly<Record<CheckId, CheckGroup>> = {
  host: 'host',
  gpu: 'accelerators',
  gpudirect: 'accelerators',
  pcie: 'accelerators',
  'numa-affinity': 'accelerators',
  rdma: 'network',
  ucx: 'network',
  memlock: 'limits',
  hugepages: 'limits',
  shm: 'limits',
  container: 'limits',
  'hpd-native': 'hpd',
}

export interface DoctorCheck {
  readonly id: CheckId
  readonly group: CheckGroup
  readonly title: string
  readonly status: CheckStatus
  /** One line: what was found (for skip: why it could not be checked). */
  readonly summary: string
  /** What to do about it; present when status is not ok. */
  readonly hint?: string
  /** Machine-readable findings; keys are stable and carry units in their names. */
  readonly data: Readonly<Record<string, unknown>>
}

export interface DoctorReport {
  readonly verdict: Verdict
  /** One plain sentence: what this machine means for `hpd serve` transfers. */
  readonly headline: string
  /** The filesystem root read ("/" on a live machine, DIR with --root DIR). */
  readonly root: string
  /** True when reading a captured tree (--root): host tools and the addon describe another machine then. */
  readonly captured: boolean
  readonly checks: readonly DoctorCheck[]
  readonly counts: Readonly<Record<CheckStatus, number>>
}
