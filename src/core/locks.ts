/**
 * Locks of a single-threaded model: each lock knows whether it is held, and a per-machine checker
 * plays lockdep — it learns the order in which lock classes are taken and reports an inversion,
 * and it turns re-taking a held lock (a certain deadlock in the kernel) into a diagnostic and a
 * {@link KernelBug} so the model never "hangs".
 */
import type { Diagnostics } from "./diagnostics.js";
import { KernelBug } from "./errors.js";

/** A lock class (all reservation locks share one): the classes seen taken while it was held. */
interface LockClass {
  readonly name: string;
  readonly takenInside: Set<LockClass>;
}

export class LockChecker {
  private readonly held: Lock[] = [];
  /** Classes by name, in the order first seen; each knows the classes taken inside it. */
  private readonly classes = new Map<string, LockClass>();
  constructor(private readonly diag: Diagnostics) {}

  /** The class named `name` (made on first use: locks look theirs up once, not per acquire). */
  lockClass(name: string): LockClass {
    let c = this.classes.get(name);
    if (!c) {
      c = { name, takenInside: new Set() };
      this.classes.set(name, c);
    }
    return c;
  }

  acquire(l: Lock, how: "write" | "read" = "write"): void {
    const held = this.held;
    if (held.includes(l)) {
      this.diag.record(`deadlock:${l.cls}`, `${l.name} taken again while held (${how})`);
      throw new KernelBug(`lock ${l.name}`, "recursive locking: would deadlock");
    }
    const inner = l.lockClass;
    for (let i = 0; i < held.length; i++) {
      const outer = held[i].lockClass;
      if (outer === inner) continue;
      if (inner.takenInside.has(outer))
        this.diag.record(
          "lockdep:inversion",
          `${outer.name} -> ${inner.name} after ${inner.name} -> ${outer.name} was seen`,
        );
      outer.takenInside.add(inner);
    }
    held.push(l);
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
    return [...this.classes.values()].flatMap((a) => [...a.takenInside].map((b) => `${a.name}>${b.name}`));
  }
}

/** A mutex-like lock with an owner-less "held" state. */
export class Lock {
  private isHeld = false;
  /** Injected contention: the next `trylock` fails. */
  contended = false;
  readonly lockClass: LockClass;
  constructor(
    readonly checker: LockChecker,
    /** Lock class for ordering (all reservation locks share one). */
    readonly cls: string,
    private readonly baseName: string,
    /** Instance number shown in the name (e.g. the buffer id). */
    private readonly instance?: number,
  ) {
    this.lockClass = checker.lockClass(cls);
  }

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
