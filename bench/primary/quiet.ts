// Imported first by each benchmark, so that it runs before src/util/log.ts reads the level: the lab's own
// info lines (and the expected "try again later" retries) would bury the figures. SEINE_LOG_LEVEL overrides.
process.env.SEINE_LOG_LEVEL ??= 'error';
