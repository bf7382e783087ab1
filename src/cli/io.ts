/** Output and exit-code conventions of the CLI (DESIGN.md: 0 ok, 1 expectation failed, 2 bad input). */
import { InputError, KernelBug, KernelError } from "../core/errors.js";

export const EXIT_OK = 0;
export const EXIT_EXPECTATION = 1;
export const EXIT_BAD_INPUT = 2;
/** A bug in peerdma itself (never the user's fault). */
export const EXIT_INTERNAL = 70;

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v), 2)}\n`,
  );
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
