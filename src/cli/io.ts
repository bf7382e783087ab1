/** Output and exit-code conventions of the CLI (DESIGN.md: 0 ok, 1 expectation failed, 2 bad input). */
import { writeSync } from "node:fs";
import { InputError, KernelBug, KernelError } from "../core/errors.js";

export const EXIT_OK = 0;
export const EXIT_EXPECTATION = 1;
export const EXIT_BAD_INPUT = 2;
/** A bug in peerdma itself (never the user's fault). */
export const EXIT_INTERNAL = 70;

/** JSON.stringify replacer of every `--json` output: bigints as hex strings. */
export const jsonReplacer = (_k: string, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v);

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`);
}

/**
 * Writes to stdout synchronously, in order, without buffering it all in the stream (for outputs of
 * hundreds of MB). A pipe left in non-blocking mode answers EAGAIN: wait for it and retry.
 */
export function writeStdoutSync(chunk: string): void {
  const buf = Buffer.from(chunk);
  let off = 0;
  while (off < buf.length) {
    try {
      off += writeSync(1, buf, off);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // the reader went away (`| head`): nothing more to say, as cat or jq would behave
      if (code === "EPIPE") process.exit(EXIT_OK);
      if (code !== "EAGAIN") throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Runs a command body, turning errors into messages and exit codes. */
export async function guard(body: () => undefined | number | Promise<undefined | number>): Promise<void> {
  try {
    const code = await body();
    process.exitCode = typeof code === "number" ? code : EXIT_OK;
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`peerdma: ${e.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else if (e instanceof KernelError) {
      process.stderr.write(`peerdma: kernel error ${e.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else if (e instanceof KernelBug) {
      process.stderr.write(`peerdma: ${e.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else {
      const err = e as Error;
      process.stderr.write(
        `peerdma: internal error: ${err?.message ?? String(e)}\n${process.env.PEERDMA_DEBUG ? `${err?.stack}\n` : "(set PEERDMA_DEBUG=1 for the stack)\n"}`,
      );
      process.exitCode = EXIT_INTERNAL;
    }
  }
}
