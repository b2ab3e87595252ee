import {MachineFacts} from '../collect.js'
import {CheckId, DoctorCheck} from '../types.js'
import {checkContainer} from './container.js'
import {checkGpu} from './gpu.js'
import {checkGpudirect} from './gpudirect.js'
import {checkHost} from './host.js'
import {checkHpdNative} from './hpd-native.js'
import {checkHugepages} from './hugepages.js'
import {checkMemlock} from './memlock.js'
import {checkNumaAffinity} from './numa-affinity.js'
import {checkPcie} from './pcie.js'
import {checkRdma} from './rdma.js'
import {checkShm} from './shm.js'
import {checkUcx} from './ucx.js'

/** Every check, keyed by its stable id; each is a pure function of the collected facts. */
export const CHECKS: Readonly<Record<CheckId, (facts: MachineFacts) => DoctorCheck>> = {
  host: checkHost,
  gpu: checkGpu,
  rdma: checkRdma,
  gpudirect: checkGpudirect,
  pcie: checkPcie,
  'numa-affinity': checkNumaAffinity,
  memlock: checkMemlock,
  hugepages: checkHugepages,
  shm: checkShm,
  container: checkContainer,
  ucx: checkUcx,
  'hpd-native': checkHpdNative,
}
