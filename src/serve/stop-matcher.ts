/**
 * Stop-sequence handling over a growing text: holds back just enough characters that a stop
 * string split across tokens is never streamed before it is recognized. Until `armed` (vLLM:
 * min_tokens not reached yet) nothing is searched and nothing held back.
 */
export class StopMatcher {
  private pending = ''
  private readonly holdBack: number

  /** `includeStop`: the stop string itself ends the output (vLLM include_stop_str_in_output). */
  constructor(
    private readonly stops: readonly string[],
    private readonly includeStop = false,
  ) {
    this.holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0)
  }

  /** Feeds new text; returns text safe to emit now and whether a stop sequence ended the output. */
  push(text: string, armed = true): {emit: string; stopped: boolean} {
    this.pending += text
    if (this.stops.length === 0 || !armed) {
      const emit = this.pending
      this.pending = ''
      return {emit, stopped: false}
    }
    let cut = -1
    let len = 0
    for (const s of this.stops) {
      const i = this.pending.indexOf(s)
      if (i >= 0 && (cut < 0 || i < cut)) {
        cut = i
        len = s.length
      }
    }
    if (cut >= 0) {
      const emit = this.pending.slice(0, this.includeStop ? cut + len : cut)
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
