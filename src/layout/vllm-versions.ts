import {UsageError} from '../errors.js'
import type {VllmVersionJudgement} from './types.js'

/**
 * The vLLM releases hpd's pitfall table knows, oldest first, with their publication dates. v0.20 is
 * the snapshot reference vllm-hybrid-pd.md was read from (main@ebf862c35, 2026-04-27); the later
 * dates are the GitHub release dates as recorded by third-party tracking of the releases (v0.21
 * 2026-05-15 … v0.30 2026-09-21; v0.28's is the day its image was announced).
 *
 * A fix is placed in the first release whose branch is known to carry it. Where only the merge date
 * is known and a release branch was cut shortly after it, the later release is named: a pitfall may
 * then be reported for one release too many, never one too few.
 */
export const VLLM_RELEASES: readonly {readonly version: string; readonly published: string}[] = [
  {version: '0.20', published: '2026-04-27'},
  {version: '0.21', published: '2026-05-15'},
  {version: '0.22', published: '2026-05-29'},
  {version: '0.23', published: '2026-06-15'},
  {version: '0.24', published: '2026-06-29'},
  {version: '0.25', published: '2026-07-11'},
  {version: '0.26', published: '2026-07-27'},
  {version: '0.27', published: '2026-08-10'},
  {version: '0.28', published: '2026-08-26'},
  {version: '0.29', published: '2026-09-09'},
  {version: '0.30', published: '2026-09-21'},
]

export const OLDEST_VLLM = VLLM_RELEASES[0].version
export const NEWEST_VLLM = VLLM_RELEASES[VLLM_RELEASES.length - 1].version

/** [major, minor] of "0.22", "0.22.1", "v0.22.1rc1"; undefined when it is not a version. */
function parse(version: string): [number, number] | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-.+]?[a-z0-9.+-]*)?$/iu.exec(version.trim())
  return m ? [Number(m[1]), Number(m[2])] : undefined
}

/** Negative when a < b, 0 when the same minor release, positive when a > b (patch levels ignored). */
export function compareVllm(a: string, b: string): number {
  const x = parse(a)!
  const y = parse(b)!
  return x[0] - y[0] || x[1] - y[1]
}

/**
 * Which release of the table `--vllm-version` is judged against: its own minor release, or the
 * newest known one when it is newer than the table. Older than v0.20 is refused: hybrid P/D through
 * the NixlConnector starts there (reference §1), so nothing older is described.
 */
export function judgeVllmVersion(requested: string | undefined): VllmVersionJudgement {
  const asked = requested ?? NEWEST_VLLM
  const v = parse(asked)
  if (!v) {
    throw new UsageError('HPD_USAGE_BAD_VLLM_VERSION', `--vllm-version "${asked}" is not a version like 0.22 or 0.22.1`, {
      hint: `Pass the vLLM release the deployment runs, e.g. --vllm-version ${NEWEST_VLLM}.`,
      details: {value: asked},
    })
  }
  const minor = `${v[0]}.${v[1]}`
  if (compareVllm(minor, OLDEST_VLLM) < 0) {
    throw new UsageError('HPD_USAGE_BAD_VLLM_VERSION', `--vllm-version ${asked} is older than ${OLDEST_VLLM}, the first release whose hybrid P/D hpd describes`, {
      hint: `Pass ${OLDEST_VLLM} or newer (known: ${VLLM_RELEASES.map((r) => r.version).join(', ')}).`,
      details: {value: asked},
    })
  }
  const judgedAgainst = compareVllm(minor, NEWEST_VLLM) > 0 ? NEWEST_VLLM : minor
  return {requested: asked, judgedAgainst, newestKnown: NEWEST_VLLM}
}
