/** Codec errors: bad bytes, bad fields, untranslatable headers. All are bad input (CLI exit 2). */
import { InputError } from "../core/errors.js";

/** Bytes that are not a TLP; names the byte offset and the field (§11). */
export class TlpDecodeError extends InputError {
  constructor(
    readonly offset: number,
    readonly reason: string,
    text?: string,
  ) {
    super(text ?? (offset >= 0 ? `byte ${offset}: ${reason}` : reason));
    this.name = "TlpDecodeError";
  }
}

/** A truncated TLP: "truncated at byte N: <what> expected". */
export function truncated(offset: number, what: string): TlpDecodeError {
  return new TlpDecodeError(offset, `${what} expected`, `truncated at byte ${offset}: ${what} expected`);
}

/** A field value an encoder cannot put on the wire. */
export class TlpEncodeError extends InputError {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = "TlpEncodeError";
  }
}

/** A header the other mode cannot express (§8). */
export class TlpTranslateError extends InputError {
  constructor(reason: string) {
    super(`untranslatable: ${reason}`);
    this.name = "TlpTranslateError";
  }
}
