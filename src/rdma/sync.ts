/**
 * Sleeping locks of the RDMA layer (`mlx5_data_direct_mutex`, `data_direct_lock`, `slow_path_mutex`)
 * and a cooperative scheduler, so that two kernel threads can be interleaved deterministically: a
 * registration holding `data_direct_lock` while a DMA PF is being removed (DD-43), or any random
 * interleaving a property test picks.
 *
 * Kernel paths that take these mutexes are generators ({@link Task}): they yield `wait` while a
 * mutex is owned by another thread and `point` where a test may preempt them. Run alone
 * ({@link Sched.run}) a task never waits; a wait there means the mutex is owned by a suspended thread
 * and the call would sleep forever — reported as a {@link KernelBug}.
 *
 * The machine's lock checker sees one thread at a time: on a switch the scheduler takes the
 * outgoing thread's mutexes out of the checker's held list and puts the incoming thread's back,
 * in their order, so lockdep ordering stays per thread.
 */
import { KernelBug } from "../core/errors.js";
import { Lock, type LockChecker } from "../core/locks.js";

export type Yielded = { kind: "wait"; on: Mutex } | { kind: "point"; label: string };
export type Task<T> = Generator<Yielded, T, void>;

export class KThread {
  readonly held: Mutex[] = [];
  constructor(readonly name: string) {}
}

export class Mutex {
  readonly lock: Lock;
  owner: KThread | null = null;
  constructor(
    readonly sched: Sched,
    cls: string,
    name: string,
  ) {
    this.lock = new Lock(sched.checker, cls, name);
  }

  get name(): string {
    return this.lock.name;
  }

  /** `mutex_lock`: sleeps (yields) while another thread owns it. */
  *acquire(): Task<void> {
    const me = this.sched.current;
    while (this.owner && this.owner !== me) yield { kind: "wait", on: this };
    if (this.owner === me) this.lock.lock(); // the checker reports the recursion and throws
    this.lock.lock();
    this.owner = me;
    me.held.push(this);
  }

  release(): void {
    const me = this.sched.current;
    if (this.owner !== me) throw new KernelBug(`mutex_unlock ${this.name}`, "not the owner");
    this.lock.unlock();
    this.owner = null;
    me.held.splice(me.held.lastIndexOf(this), 1);
  }

  /** `lockdep_assert_held` for the running thread. */
  assertHeld(site: string): void {
    if (this.owner !== this.sched.current) throw new KernelBug(site, `${this.name} must be held`);
  }
}

/** A task started with {@link Sched.spawn}. */
export interface Spawned<T> {
  readonly thread: KThread;
  done: boolean;
  result?: T;
  error?: unknown;
  /** What the task last yielded (null once done). */
  last: Yielded | null;
}

interface SpawnedInternal<T> extends Spawned<T> {
  task: Task<T>;
}

export class Sched {
  readonly main = new KThread("main");
  current: KThread = this.main;
  constructor(readonly checker: LockChecker) {}

  /** Runs `task` to completion on the current thread. */
  run<T>(task: Task<T>): T {
    for (;;) {
      const r = task.next();
      if (r.done) return r.value;
      if (r.value.kind === "wait") {
        const owner = r.value.on.owner?.name ?? "?";
        throw new KernelBug(
          `mutex_lock ${r.value.on.name}`,
          `owned by suspended thread "${owner}": ${this.current.name} would sleep forever`,
        );
      }
    }
  }

  spawn<T>(name: string, task: Task<T>): Spawned<T> {
    const s: SpawnedInternal<T> = { thread: new KThread(name), task, done: false, last: null };
    return s;
  }

  /**
   * Runs `s` until its next yield. Returns "done", "blocked" (waiting for a mutex owned by someone
   * else) or "progress". A blocked task retries its mutex on the next step.
   */
  step<T>(s: Spawned<T>): "done" | "blocked" | "progress" {
    if (s.done) return "done";
    const si = s as SpawnedInternal<T>;
    const prev = this.current;
    this.switchTo(si.thread);
    try {
      const r = si.task.next();
      if (r.done) {
        s.done = true;
        s.result = r.value;
        s.last = null;
        return "done";
      }
      s.last = r.value;
      return r.value.kind === "wait" ? "blocked" : "progress";
    } catch (e) {
      s.done = true;
      s.error = e;
      s.last = null;
      return "done";
    } finally {
      this.switchTo(prev);
    }
  }

  /** Steps every task in turn until all are done; throws when all remaining ones are blocked. */
  runAll(tasks: Spawned<unknown>[]): void {
    for (;;) {
      const live = tasks.filter((t) => !t.done);
      if (!live.length) return;
      let moved = false;
      for (const t of live) if (this.step(t) !== "blocked") moved = true;
      if (!moved)
        throw new KernelBug("sched", `deadlock: ${live.map((t) => t.thread.name).join(", ")} all wait`);
    }
  }

  private switchTo(t: KThread): void {
    if (t === this.current) return;
    for (const m of [...this.current.held].reverse()) this.checker.release(m.lock);
    for (const m of t.held) this.checker.acquire(m.lock);
    this.current = t;
  }
}
