export * from "./device.js";
export * from "./errno.js";
export * from "./errors.js";
export * from "./hex.js";
