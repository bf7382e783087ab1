/**
 * Every event the model records, as one typed union (declared once, like QEMU's trace-events).
 * Subsystems emit only these; the demo, `run`, tests and the CLI read the same log.
 */
import type { DmaBufEvent } from "../dmabuf/dma-buf.js";
import type { VfioEvent } from "../vfio/events.js";

export type MachineEvent =
  | { kind: "kernel-log"; line: string }
  | { kind: "diagnostic"; event: string; detail?: string }
  | { kind: "reset"; device: string; method: string; affected: string[] }
  | DmaBufEvent
  | VfioEvent;

export interface LoggedEvent {
  seq: number;
  event: MachineEvent;
}

/** Time-ordered log (sequence numbers; the model has no clock). */
export class EventLog {
  private items: LoggedEvent[] = [];
  private listeners: ((e: LoggedEvent) => void)[] = [];

  emit(event: MachineEvent): void {
    const e = { seq: this.items.length, event };
    this.items.push(e);
    for (const l of this.listeners) l(e);
  }

  all(): readonly LoggedEvent[] {
    return this.items;
  }

  since(seq: number): LoggedEvent[] {
    return this.items.slice(seq);
  }

  get length(): number {
    return this.items.length;
  }

  subscribe(fn: (e: LoggedEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== fn);
    };
  }
}
