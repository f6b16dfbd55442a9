/**
 * Runs a pass of work one at a time: a request while a pass runs is answered by one more pass after it
 * (whatever it should see may have changed meanwhile), however many requests came.
 */
export class SerialPass {
  private running?: Promise<void>;
  private again = false;

  constructor(
    private readonly pass: () => Promise<void>,
    /** Checked before each extra pass: no more passes once it says stop. */
    private readonly stopped: () => boolean = () => false,
  ) {}

  /** Resolves when the pass that covers this request has ended. */
  run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.pass();
      } while (this.again && !this.stopped());
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The pass running now, if any. */
  get current(): Promise<void> | undefined {
    return this.running;
  }
}
