import {RootFs} from './root-fs.js'

/**
 * Optional tools the doctor asks (nvidia-smi, ucx_info). Live, they run through execa with a
 * timeout. Under `--root DIR` they would describe THIS machine, not the captured one, so their
 * output is read from files captured on the other machine (`DIR/.hpd-doctor/<file>`) instead.
 * Either way, a tool that cannot answer yields `unavailable` with the reason: the check that
 * needed it then reports `skip`, never `ok`.
 */
export type ToolName = 'nvidia-smi' | 'ucx_info-v' | 'ucx_info-d'

export type ToolOutput =
  | {readonly kind: 'output'; readonly stdout: string; readonly source: string}
  | {readonly kind: 'unavailable'; readonly reason: string}

export interface ToolRunner {
  run(tool: ToolName): Promise<ToolOutput>
}

interface ToolSpec {
  readonly file: string
  readonly args: readonly string[]
  /** nvidia-smi can take ~1 s to initialise the driver on a machine without persistence mode. */
  readonly timeoutMs: number
  /** File name under DIR/.hpd-doctor/ holding this command's stdout captured on the probed machine. */
  readonly captureFile: string
}

export const NVIDIA_SMI_QUERY = 'index,pci.bus_id,name,driver_version,memory.total'

export const TOOL_SPECS: Readonly<Record<ToolName, ToolSpec>> = {
  'nvidia-smi': {
    file: 'nvidia-smi',
    args: [`--query-gpu=${NVIDIA_SMI_QUERY}`, '--format=csv,noheader,nounits'],
    timeoutMs: 5000,
    captureFile: 'nvidia-smi.txt',
  },
  'ucx_info-v': {file: 'ucx_info', args: ['-v'], timeoutMs: 3000, captureFile: 'ucx_info-v.txt'},
  'ucx_info-d': {file: 'ucx_info', args: ['-d'], timeoutMs: 3000, captureFile: 'ucx_info-d.txt'},
}

export const CAPTURE_DIR = '/.hpd-doctor'

/** The shell line that captures a tool's output on the machine being described. */
export function captureCommand(tool: ToolName): string {
  const spec = TOOL_SPECS[tool]
  return `${spec.file} ${spec.args.join(' ')} > DIR${CAPTURE_DIR}/${spec.captureFile}`
}

/** Runs the real tools on this machine. */
export class LiveToolRunner implements ToolRunner {
  /** @param env environment the tools run with (PATH finds them; UCX_* variables shape `ucx_info -d`). */
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  async run(tool: ToolName): Promise<ToolOutput> {
    // Never rejects: a tool that cannot answer is a finding (skip), and the probes await tools
    // late, so a rejection here would surface as an unhandled one.
    try {
      return await this.runUnguarded(tool)
    } catch (error) {
      return {kind: 'unavailable', reason: `${TOOL_SPECS[tool].file} could not be run: ${(error as Error).message}`}
    }
  }

  private async runUnguarded(tool: ToolName): Promise<ToolOutput> {
    const spec = TOOL_SPECS[tool]
    // execa costs ~150 ms to import on a small machine; only pay it when a tool is asked for.
    const {execa} = await import('execa')
    const result = await execa(spec.file, [...spec.args], {
      timeout: spec.timeoutMs,
      reject: false,
      stdin: 'ignore',
      env: this.env,
      extendEnv: false,
    })
    const command = `${spec.file} ${spec.args.join(' ')}`
    if (result.timedOut) return {kind: 'unavailable', reason: `\`${command}\` timed out after ${spec.timeoutMs / 1000} s`}
    const code = (result as {code?: string}).code
    if (code === 'ENOENT' || (result.failed && result.exitCode === undefined && /ENOENT/u.test(String(result.message)))) {
      return {kind: 'unavailable', reason: `${spec.file} is not installed (not found on PATH)`}
    }
    if (result.exitCode !== 0) {
      const firstLine = `${result.stderr || result.stdout}`.trim().split('\n', 1)[0] ?? ''
      return {kind: 'unavailable', reason: `\`${command}\` exited with code ${result.exitCode}${firstLine ? `: ${firstLine}` : ''}`}
    }
    return {kind: 'output', stdout: String(result.stdout), source: command}
  }
}

/** Reads tool outputs captured on the probed machine from DIR/.hpd-doctor/. */
export class CapturedToolRunner implements ToolRunner {
  constructor(private readonly fs: RootFs) {}

  async run(tool: ToolName): Promise<ToolOutput> {
    const spec = TOOL_SPECS[tool]
    const machinePath = `${CAPTURE_DIR}/${spec.captureFile}`
    const text = await this.fs.readText(machinePath)
    if (text === undefined) {
      return {
        kind: 'unavailable',
        reason: `not captured (no .hpd-doctor/${spec.captureFile} in the --root tree; ${spec.file} cannot describe another machine)`,
      }
    }
    return {kind: 'output', stdout: text, source: this.fs.hostPath(machinePath)}
  }
}
