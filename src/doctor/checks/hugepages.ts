import {MachineFacts} from '../collect.js'
import {formatBytes} from '../format.js'
import {DoctorCheck} from '../types.js'
import {result} from './result.js'

const TITLE = 'Hugepages'

export function checkHugepages(facts: MachineFacts): DoctorCheck {
  const m = facts.memory
  const data = {totalPages: m.hugePagesTotal ?? null, freePages: m.hugePagesFree ?? null, pageSizeBytes: m.hugePageSizeBytes ?? null, thpMode: m.thpMode ?? null}
  if (m.hugePagesTotal === undefined) return result('hugepages', TITLE, 'skip', '/proc/meminfo is unreadable or has no HugePages lines', data)
  const size = m.hugePageSizeBytes ? formatBytes(m.hugePageSizeBytes) : '?'
  const thp = m.thpMode ? `; transparent hugepages: ${m.thpMode}` : ''
  if (m.hugePagesTotal === 0) return result('hugepages', TITLE, 'ok', `none reserved (${size} pages; optional)${thp}`, data)
  if (m.hugePagesFree === 0) {
    return result('hugepages', TITLE, 'warn', `all ${m.hugePagesTotal} reserved ${size} pages are in use${thp}`, data,
      'UCX tries SysV hugepages first and silently falls back to normal pages; reserve more (`sysctl vm.nr_hugepages=N`) or free them.')
  }
  return result('hugepages', TITLE, 'ok', `${m.hugePagesFree} of ${m.hugePagesTotal} ${size} pages free${thp}`, data)
}
