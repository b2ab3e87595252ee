/**
 * Stop-sequence handling over a growing text: holds back just enough characters that a stop
 * string split across tokens is never streamed before it is recognized.
 */
export class StopMatcher {
  private pending = ''
  private readonly holdBack: number

  constructor(private readonly stops: readonly string[]) {
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0)
  }

  /** Feeds new text; returns text safe to emit now and whether a stop sequence ended the output. */
  push(text: string): {emit: string; stopped: boolean} {
    this.pending += text
    if (this.stops.length === 0) {
      const emit = this.pending
      this.pending = ''
      return {emit, stopped: false}
    }
    let cut = -1
    for (const s of this.stops) {
      const i = this.pending.indexOf(s)
      if (i >= 0 && (cut < 0 || i < cut)) cut = i
    }
    if (cut >= 0) {
      const emit = this.pending.slice(0, cut)
      this.pending = ''
      return {emit, stopped: true}
    }
    const safe = Math.max(0, this.pending.length - this.holdBack)
    const emit = this.pending.slice(0, safe)
    this.pending = this.pending.slice(safe)
    return {emit, stopped: false}
  }

  /** The held-back tail once the output ended without a stop sequence. */
  flush(): string {
    const rest = this.pending
    this.pending = ''
    return rest
  }
}
