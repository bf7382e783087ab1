export * from "./events.js";
export * from "./machine.js";
export * from "./profile.js";
