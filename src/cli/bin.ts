#!/usr/bin/env node
/** The `idnode` executable (package.json `bin`); cluster workers start here too. */
import { main, SERVING } from './main.js';

const code = await main(process.argv.slice(2));
if (code !== SERVING) process.exitCode = code;
