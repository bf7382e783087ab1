/**
 * Every event the model records, as one typed union (declared once, like QEMU's trace-events).
 * Subsystems emit only these; the demo, `run`, tests and the CLI read the same log.
 */
import type { DataplaneEvent } from "../dataplane/events.js";
import type { DmaBufEvent } from "../dmabuf/dma-buf.js";
import type { NvmeEvent } from "../nvme/events.js";
import type { RdmaEvent } from "../rdma/events.js";
import type { VfioEvent } from "../vfio/events.js";

export type MachineEvent =
  | { kind: "kernel-log"; line: string }
  | { kind: "diagnostic"; event: string; detail?: string }
  | { kind: "reset"; device: string; method: string; affected: string[] }
  | DmaBufEvent
  | VfioEvent
  | RdmaEvent
  | DataplaneEvent
  | NvmeEvent;

export interface LoggedEvent {
  seq: number;
  event: MachineEvent;
}

/**
 * Time-ordered log (sequence numbers; the model has no clock). It keeps the newest `capacity`
 * events so a long run (a benchmark, a soak) does not grow without bound; `dropped` says how many
 * older ones went.
 */
export class EventLog {
  private items: LoggedEvent[] = [];
  private next = 0;
  private listeners: ((e: LoggedEvent) => void)[] = [];
  dropped = 0;

  /** False: nothing is recorded (tracing off, e.g. for benchmarks); listeners still run. */
  enabled = true;

  constructor(readonly capacity = 100_000) {}

  /** Someone records or listens: worth building an event. */
  get active(): boolean {
    return this.enabled || this.listeners.length > 0;
  }

  emit(event: MachineEvent): void {
    if (!this.enabled && !this.listeners.length) return;
    const e = { seq: this.next++, event };
    this.items.push(e);
    if (this.items.length > this.capacity * 2) {
      const cut = this.items.length - this.capacity;
      this.items = this.items.slice(cut);
      this.dropped += cut;
    }
    for (const l of this.listeners) l(e);
  }

  /** The events still held (the newest `capacity`, at least). */
  all(): readonly LoggedEvent[] {
    return this.items;
  }

  /** Events with a sequence number ≥ `seq` that are still held. */
  since(seq: number): LoggedEvent[] {
    const first = this.items.length ? this.items[0].seq : this.next;
    return this.items.slice(Math.max(0, seq - first));
  }

  /** Sequence number the next event gets (use it as a mark for `since`). */
  get length(): number {
    return this.next;
  }

  subscribe(fn: (e: LoggedEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
}
