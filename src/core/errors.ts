import { ERRNO, type ErrnoName } from "./errno.js";

/** A spec item id such as `K-31`, `DD-3`, `TPH-7`. */
export type SpecId = `${"K" | "DD" | "TPH" | "TLP" | "BW"}-${number}`;

/**
 * A failure the kernel reports as a negative errno. It carries the errno (name and number),
 * the check that failed (a short stable identifier) and, where known, the spec item.
 */
export class KernelError extends Error {
  readonly errno: number;
  constructor(
    readonly errnoName: ErrnoName,
    readonly check: string,
    readonly spec?: SpecId,
    detail?: string,
  ) {
    super(`${errnoName}: ${check}${detail ? ` (${detail})` : ""}${spec ? ` [${spec}]` : ""}`);
    this.name = "KernelError";
    this.errno = ERRNO[errnoName];
  }
  /** The kernel's return value (negated errno). */
  get ret(): number {
    return -this.errno;
  }
}

/**
 * A programming error of the caller that the kernel only catches with a lockdep assertion or
 * BUG() (kernel-semantics §0.5). Never the result of bad user input.
 */
export class KernelBug extends Error {
  constructor(
    readonly site: string,
    detail?: string,
  ) {
    super(`kernel BUG at ${site}${detail ? `: ${detail}` : ""}`);
    this.name = "KernelBug";
  }
}

/**
 * Bad input to peerdma itself (a malformed machine file, an unknown BDF on the command line).
 * `where` names the file and the place inside it; the CLI prints the message and exits 2.
 */
export class InputError extends Error {
  constructor(
    message: string,
    readonly where?: string,
  ) {
    super(where ? `${where}: ${message}` : message);
    this.name = "InputError";
  }
}

export function kerr(name: ErrnoName, check: string, spec?: SpecId, detail?: string): KernelError {
  return new KernelError(name, check, spec, detail);
}
