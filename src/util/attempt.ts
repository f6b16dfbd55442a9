/** Runs `step` on every item in order, each attempted whatever the others did; returns the first failure. */
export async function attemptEach<T>(items: Iterable<T>, step: (item: T) => Promise<unknown>): Promise<unknown> {
  let failure: unknown;
  for (const item of items) {
    await step(item).catch((e: unknown) => {
      failure ??= e;
    });
  }
  return failure;
}
