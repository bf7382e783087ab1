/**
 * Diagnostics sink (kernel-semantics §0.5). A kernel WARN becomes the event `warn:<site>` and the
 * caller carries on with the stated return value; model-level findings use their own prefix
 * (`leak:iova`, `leak:iommu-mapping`, `notice:…`). One sink per modelled boot: WARN_ON_ONCE state
 * lives in it, so a fresh machine warns again.
 */
export interface Diagnostics {
  /** A kernel WARN at `site`: recorded as `warn:<site>`. */
  warn(site: string, detail?: string): void;
  /** Any other diagnostic event, written in full (`leak:iova`). */
  record(event: string, detail?: string): void;
  /** WARN_ON_ONCE bookkeeping: true only the first time `key` is asked on this sink. */
  firstTime(key: string): boolean;
}

export interface DiagnosticEvent {
  event: string;
  detail?: string;
}

/** `WARN_ON_ONCE` / `dev_WARN_ONCE`: warns the first time per sink, silent afterwards. */
export function warnOnce(diag: Diagnostics, site: string, detail?: string): void {
  if (diag.firstTime(`warn:${site}`)) diag.warn(site, detail);
}

/** The recording sink used by the model and its tests. */
export class DiagnosticLog implements Diagnostics {
  readonly events: DiagnosticEvent[] = [];
  private readonly once = new Set<string>();

  warn(site: string, detail?: string): void {
    this.record(`warn:${site}`, detail);
  }
  record(event: string, detail?: string): void {
    this.events.push(detail === undefined ? { event } : { event, detail });
  }
  firstTime(key: string): boolean {
    if (this.once.has(key)) return false;
    this.once.add(key);
    return true;
  }
  /** Number of events named exactly `event`. */
  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }
  has(event: string): boolean {
    return this.events.some((e) => e.event === event);
  }
  /** Event names in order (handy for assertions). */
  names(): string[] {
    return this.events.map((e) => e.event);
  }
  clear(): void {
    this.events.length = 0;
  }
}

/** A sink that drops everything (WARN_ON_ONCE still behaves as once). */
export class NullDiagnostics implements Diagnostics {
  private readonly once = new Set<string>();
  warn(): void {}
  record(): void {}
  firstTime(key: string): boolean {
    if (this.once.has(key)) return false;
    this.once.add(key);
    return true;
  }
}
