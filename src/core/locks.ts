/**
 * Locks of a single-threaded model: each lock knows whether it is held, and a per-machine checker
 * plays lockdep — it learns the order in which lock classes are taken and reports an inversion,
 * and it turns re-taking a held lock (a certain deadlock in the kernel) into a diagnostic and a
 * {@link KernelBug} so the model never "hangs".
 */
import type { Diagnostics } from "./diagnostics.js";
import { KernelBug } from "./errors.js";

export class LockChecker {
  private readonly held: Lock[] = [];
  /** outer class → classes taken while it was held. */
  private readonly edges = new Map<string, Set<string>>();
  constructor(private readonly diag: Diagnostics) {}

  acquire(l: Lock, how: "write" | "read" = "write"): void {
    if (this.held.includes(l)) {
      this.diag.record(`deadlock:${l.cls}`, `${l.name} taken again while held (${how})`);
      throw new KernelBug(`lock ${l.name}`, "recursive locking: would deadlock");
    }
    for (const h of this.held) {
      if (h.cls === l.cls) continue;
      if (this.edges.get(l.cls)?.has(h.cls))
        this.diag.record("lockdep:inversion", `${h.cls} -> ${l.cls} after ${l.cls} -> ${h.cls} was seen`);
      const after = this.edges.get(h.cls);
      if (!after) this.edges.set(h.cls, new Set([l.cls]));
      else after.add(l.cls);
    }
    this.held.push(l);
  }

  release(l: Lock): void {
    if (this.held[this.held.length - 1] === l) {
      this.held.pop(); // the usual nesting
      return;
    }
    const i = this.held.lastIndexOf(l);
    if (i < 0) throw new KernelBug(`unlock ${l.name}`, "lock not held");
    this.held.splice(i, 1);
  }

  /** Lock classes in the order they are currently held (outermost first). */
  heldClasses(): string[] {
    return this.held.map((l) => l.cls);
  }

  /** Learned ordering, e.g. ["memory_lock>dma_resv"]. */
  order(): string[] {
    return [...this.edges].flatMap(([a, bs]) => [...bs].map((b) => `${a}>${b}`));
  }
}

/** A mutex-like lock with an owner-less "held" state. */
export class Lock {
  private isHeld = false;
  /** Injected contention: the next `trylock` fails. */
  contended = false;
  constructor(
    readonly checker: LockChecker,
    /** Lock class for ordering (all reservation locks share one). */
    readonly cls: string,
    private readonly baseName: string,
    /** Instance number shown in the name (e.g. the buffer id). */
    private readonly instance?: number,
  ) {}

  get name(): string {
    return this.instance === undefined ? this.baseName : `${this.baseName}#${this.instance}`;
  }

  get held(): boolean {
    return this.isHeld;
  }

  lock(): void {
    this.checker.acquire(this);
    this.isHeld = true;
  }

  /** `down_write_trylock` / `mutex_trylock`: false when contended (injected) or already held. */
  trylock(): boolean {
    if (this.contended || this.isHeld) return false;
    this.lock();
    return true;
  }

  unlock(): void {
    this.checker.release(this);
    this.isHeld = false;
  }

  /** `lockdep_assert_held`: a caller bug, not an errno. */
  assertHeld(site: string): void {
    if (!this.isHeld) throw new KernelBug(site, `${this.name} must be held`);
  }

  assertNotHeld(site: string): void {
    if (this.isHeld) throw new KernelBug(site, `${this.name} must not be held (it is taken inside)`);
  }

  /** Runs `body` with the lock held. */
  with<T>(body: () => T): T {
    this.lock();
    try {
      return body();
    } finally {
      this.unlock();
    }
  }
}
