import {MachineFacts} from '../collect.js'
import {formatBytes} from '../format.js'
import {SIMD_FLAGS} from '../probes/host.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'Host: OS, kernel, CPU, memory'

export function checkHost(facts: MachineFacts): DoctorCheck {
  if (!facts.host.ok) return result('host', TITLE, 'skip', facts.host.reason, {}, 'Run hpd doctor with HPD_DEBUG=1 to see why.')
  const h = facts.host.value
  const flags = new Set(h.cpuFlags)
  const simd = SIMD_FLAGS.filter((f) => flags.has(f))
  const data = {
    source: h.source,
    os: h.os,
    kernel: h.kernel,
    arch: h.arch,
    cpuModel: h.cpuModel,
    logicalCpus: h.logicalCpus,
    memTotalBytes: h.memTotalBytes,
    simd,
  }
  const parts = [
    h.os ?? 'unknown OS',
    h.kernel ? `kernel ${h.kernel}` : undefined,
    h.cpuModel ?? undefined,
    h.logicalCpus ? `${h.logicalCpus} CPUs` : undefined,
    h.memTotalBytes ? `${formatBytes(h.memTotalBytes)} RAM` : undefined,
    simd.length > 0 ? `SIMD ${simd.join(' ')}` : undefined,
  ].filter(Boolean)
  const summary = parts.join(', ')
  const isX86 = flags.has('sse2')
  if (isX86 && !flags.has('avx2')) {
    return result('host', TITLE, 'warn', `${summary}; no AVX2`, data,
      'hpd\'s CPU kernels and OpenBLAS fall back to SSE without AVX2 and run several times slower; use a CPU with AVX2 (x86-64-v3) or newer.')
  }
  return result('host', TITLE, 'ok', summary, data)
}
