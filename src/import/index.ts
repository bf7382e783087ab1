export * from "./builtin.js";
export * from "./machine-file.js";
export * from "./machine-schema.js";
export * from "./source.js";
