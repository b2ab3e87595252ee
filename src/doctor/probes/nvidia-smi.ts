import {NVIDIA_SMI_QUERY, ToolRunner} from '../tools.js'
import {Probed} from './ucx-info.js'

/** One row of `nvidia-smi --query-gpu=index,pci.bus_id,name,driver_version,memory.total --format=csv,noheader,nounits`. */
export interface NvidiaSmiGpu {
  readonly index: number
  /** Normalised to sysfs spelling: '00000000:17:00.0' → '0000:17:00.0'. */
  readonly bdf: string
  readonly name: string
  readonly driverVersion: string
  readonly memoryMiB: number
}

export async function probeNvidiaSmi(tools: ToolRunner): Promise<Probed<readonly NvidiaSmiGpu[]>> {
  const out = await tools.run('nvidia-smi')
  if (out.kind === 'unavailable') return {ok: false, reason: out.reason}
  const gpus = parseNvidiaSmiCsv(out.stdout)
  return gpus === undefined
    ? {ok: false, reason: `could not parse ${out.source} (expected --query-gpu=${NVIDIA_SMI_QUERY} csv,noheader,nounits)`}
    : {ok: true, value: gpus, source: out.source}
}

export function parseNvidiaSmiCsv(text: string): NvidiaSmiGpu[] | undefined {
  const rows = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const gpus: NvidiaSmiGpu[] = []
  for (const row of rows) {
    const [index, busId, name, driverVersion, memory] = row.split(',').map((f) => f.trim())
    if (busId === undefined || memory === undefined || !/^\d+$/u.test(index)) return undefined
    gpus.push({index: Number(index), bdf: normaliseBusId(busId), name, driverVersion, memoryMiB: Number(memory)})
  }
  return gpus
}

/** nvidia-smi prints an 8-digit PCI domain in upper case; sysfs uses 4 digits, lower case. */
export function normaliseBusId(busId: string): string {
  const m = /^([\da-f]+):([\da-f]{2}):([\da-f]{2})\.([\da-f])$/iu.exec(busId)
  if (!m) return busId.toLowerCase()
  return `${m[1].slice(-4).padStart(4, '0')}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase()
}
