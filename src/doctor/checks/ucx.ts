import {MachineFacts} from '../collect.js'
import {nvidiaGpus, rdmaNics, usableRdmaPortCount} from '../derive.js'
import {formatBytes} from '../format.js'
import {PCI_VENDOR_MELLANOX} from '../probes/pci.js'
import {UCX_TCP_DEFAULT_RX_SEG_BYTES, UCX_TCP_DEFAULT_TX_SEG_BYTES} from '../probes/ucx-info.js'
import {CheckStatus, DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'UCX: version and transports'

const CUDA_TRANSPORTS = ['cuda_copy', 'cuda_ipc', 'gdr_copy']
const VERBS_TRANSPORTS = ['rc_verbs', 'ud_verbs', 'rc_mlx5', 'dc_mlx5', 'ud_mlx5']
/** mlx5 direct-verbs transports: what UCX uses on ConnectX at full speed. */
const ACCELERATED_IB_TRANSPORTS = ['rc_mlx5', 'dc_mlx5', 'ud_mlx5']

interface Finding {
  readonly status: Exclude<CheckStatus, 'ok' | 'skip'>
  readonly text: string
  readonly hint: string
}

export function checkUcx(facts: MachineFacts): DoctorCheck {
  const {version, devices} = facts.ucx
  const tuningEnv = Object.fromEntries(Object.entries(facts.ucxEnv).filter(([k]) => /SEG_SIZE|^UCX_TLS$|^UCX_NET_DEVICES$/u.test(k)))
  if (!devices.ok) {
    const reason = version.ok || devices.reason === version.reason ? devices.reason : bothReasons(version.reason, devices.reason)
    return result('ucx', TITLE, 'skip', `${version.ok ? `UCX ${version.value.version}; transports unknown: ` : ''}${reason}`,
      {version: version.ok ? version.value.version : null, transports: [], env: tuningEnv},
      facts.captured
        ? 'Capture `ucx_info -v` and `ucx_info -d` on that machine into DIR/.hpd-doctor/ucx_info-v.txt and ucx_info-d.txt.'
        : 'Install ucx-utils (Debian) so doctor can ask ucx_info; hpd-native still shows whether hpd\'s own UCX link works.')
  }
  const d = devices.value
  const names = d.transports.map((t) => t.name)
  const has = (list: readonly string[]): string[] => names.filter((n) => list.includes(n))
  const cuda = has(CUDA_TRANSPORTS)
  const verbs = has(VERBS_TRANSPORTS)
  const accelerated = has(ACCELERATED_IB_TRANSPORTS)
  const gpus = nvidiaGpus(facts).length
  const nics = rdmaNics(facts)
  const usablePorts = usableRdmaPortCount(facts)
  const tcpTuned = d.tcpTxSegBytes !== undefined && (d.tcpTxSegBytes > UCX_TCP_DEFAULT_TX_SEG_BYTES || (d.tcpRxSegBytes ?? 0) > UCX_TCP_DEFAULT_RX_SEG_BYTES)
  const data = {
    version: version.ok ? version.value.version : null,
    configureFlags: version.ok ? version.value.configureFlags : [],
    transports: names,
    devicesByTransport: Object.fromEntries(d.transports.map((t) => [t.name, t.devices])),
    cudaTransports: cuda,
    ibTransports: verbs,
    dmabuf: d.dmabuf,
    tcpTxSegBytes: d.tcpTxSegBytes ?? null,
    tcpRxSegBytes: d.tcpRxSegBytes ?? null,
    tcpSegmentsTuned: d.tcpTxSegBytes === undefined ? null : tcpTuned,
    failures: d.failures,
    env: tuningEnv,
  }
  const findings: Finding[] = []
  if (gpus > 0 && cuda.length === 0) {
    findings.push({status: 'fail', text: 'no CUDA transports (UCX built without --with-cuda): GPU memory would be handled as host memory',
      hint: 'Install a UCX built --with-cuda (NVIDIA HPC-X / DOCA-OFED packages, or build UCX from source).'})
  }
  if (nics.length > 0 && verbs.length === 0) {
    findings.push({status: 'fail', text: `no verbs transports though ${nics.length} RDMA device(s) exist: UCX falls back to TCP`,
      hint: 'Install rdma-core (libibverbs) and a UCX built --with-verbs; in a container pass --device=/dev/infiniband.'})
  } else if (nics.some((n) => n.pci?.vendorId === PCI_VENDOR_MELLANOX) && accelerated.length === 0) {
    findings.push({status: 'warn', text: `only generic verbs (${verbs.join(', ')}), no accelerated rc_mlx5/dc_mlx5 for the ConnectX NICs`,
      hint: 'Install rdma-core\'s mlx5 provider (libmlx5) and a UCX built with mlx5 direct verbs (--with-mlx5-dv).'})
  }
  // hpd's own transfer agent applies 256 KiB TCP segments unless UCX_TCP_*_SEG_SIZE is set, so
  // the UCX defaults slow hpd only when the user pinned small segments in the environment; other
  // UCX users on the machine (NIXL/vLLM) do run at the defaults, which the summary says.
  const userPinnedSegments = Object.keys(facts.ucxEnv).some((k) => /^UCX_TCP_(TX|RX)_SEG_SIZE$/u.test(k))
  if (d.tcpTxSegBytes !== undefined && !tcpTuned && usablePorts === 0 && userPinnedSegments) {
    findings.push({status: 'warn',
      text: `TCP pinned to ${formatBytes(d.tcpTxSegBytes)} TX / ${formatBytes(d.tcpRxSegBytes ?? UCX_TCP_DEFAULT_RX_SEG_BYTES)} RX segments by UCX_TCP_*_SEG_SIZE: GET-based reads over TCP (HPD_READ_PROTOCOL=get, NIXL/vLLM) run ~3x below 256 KiB segments; hpd's default served reads barely depend on them`,
      hint: 'export UCX_TCP_TX_SEG_SIZE=256k UCX_TCP_RX_SEG_SIZE=256k (or unset them: hpd then applies 256 KiB itself) for both prefill and decode workers (peers must agree, or UCX aborts).'})
  }
  const tcpNote = d.tcpTxSegBytes === undefined
    ? ''
    : tcpTuned
      ? `; TCP segments tuned (${formatBytes(d.tcpTxSegBytes)} TX)`
      : userPinnedSegments
        ? ''
        : `; TCP at UCX's default ${formatBytes(d.tcpTxSegBytes)} TX segments (hpd applies 256 KiB itself; other UCX users such as NIXL need UCX_TCP_TX_SEG_SIZE/RX_SEG_SIZE=256k)`
  const base = `UCX ${data.version ?? '(version unknown)'}: ${names.join(', ')}${tcpNote}`
  if (findings.length === 0) return result('ucx', TITLE, 'ok', base, data)
  const status = findings.some((f) => f.status === 'fail') ? 'fail' : 'warn'
  return result('ucx', TITLE, status, `${base}; ${findings.map((f) => f.text).join('; ')}`, data, findings.map((f) => f.hint).join(' '))
}

/** Two unavailable outputs of the same tool usually fail the same way; say it once. */
function bothReasons(versionReason: string, devicesReason: string): string {
  const v = versionReason.replace('ucx_info-v.txt', 'ucx_info-{v,d}.txt')
  return v === devicesReason.replace('ucx_info-d.txt', 'ucx_info-{v,d}.txt') ? v : `ucx_info -v: ${versionReason}; ucx_info -d: ${devicesReason}`
}
