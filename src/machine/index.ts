export * from "./events.js";
export * from "./machine.js";
