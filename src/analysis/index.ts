export * from "./demo.js";
export * from "./explain.js";
export * from "./matrix.js";
export * from "./path-type.js";
export * from "./reasons.js";
export * from "./route.js";
