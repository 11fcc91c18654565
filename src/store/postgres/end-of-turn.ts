/** A task run once at the end of this turn of the event loop, however often it was asked for meanwhile. */
export class EndOfTurn {
  private scheduled = false;

  constructor(private readonly task: () => void) {}

  /** Runs the task after the I/O callbacks of this turn: what they ask for joins in. */
  request(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.task();
    });
  }
}
