/** The one place better-sqlite3's types are named for the engine's modules. */
import type Database from 'better-sqlite3';

export type Db = Database.Database;
