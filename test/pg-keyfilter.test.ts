// test/keyfilter.test.ts again, every node on a new PostgreSQL database (see TEST_ENGINE in helpers.ts).
process.env.TEST_STORE_ENGINE = 'postgres';
await import('./keyfilter.test.js');
