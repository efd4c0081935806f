/**
 * The registry of named instances: `new Database(url, { name })` registers,
 * `Database.get(name)` finds it. There is one registry per JavaScript realm
 * (per isolate on Workers, per worker thread elsewhere).
 *
 * @module
 */
import type { Database } from "./database.ts";
import { RegistryError } from "./errors.ts";

const instances = new Map<string, Database>();

function listed(): string {
  return instances.size === 0 ? "none is registered" : `registered: ${[...instances.keys()].join(", ")}`;
}

/** Registers an instance under a name; a taken name is a {@linkcode RegistryError}. */
export function register(name: string, db: Database): void {
  if (instances.has(name)) {
    throw new RegistryError(`a database named "${name}" is already registered; close it first or pick another name`);
  }
  instances.set(name, db);
}

/** Removes an instance, if it is the one registered under its name. */
export function unregister(name: string, db: Database): void {
  if (instances.get(name) === db) instances.delete(name);
}

/** The instance registered under a name; a missing one is a {@linkcode RegistryError}. */
export function lookup(name: string): Database {
  const db = instances.get(name);
  if (db === undefined) throw new RegistryError(`no database named "${name}" (${listed()})`);
  return db;
}

/** True when a name is registered. */
export function isRegistered(name: string): boolean {
  return instances.has(name);
}

/** The registered names, in registration order. */
export function registeredNames(): string[] {
  return [...instances.keys()];
}

/** All registered instances. */
export function registeredInstances(): Database[] {
  return [...instances.values()];
}
