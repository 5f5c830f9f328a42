/** Scrapes /metrics on an interval during a level and times each scrape. */
export class Scraper {
  private timer: NodeJS.Timeout | undefined;
  /** Scrapes still in flight: stop() waits for them, so a scrape begun during the level is counted. */
  private readonly inFlight = new Set<Promise<void>>();
  readonly timesMs: number[] = [];
  errors = 0;

  constructor(
    private readonly url: string,
    private readonly intervalSeconds: number,
    private readonly apiKey?: string,
  ) {}

  start(): void {
    const once = async () => {
      const started = performance.now();
      try {
        const res = await fetch(`${this.url}/metrics`, { headers: this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {} });
        await res.text();
        if (!res.ok) this.errors++;
        else this.timesMs.push(performance.now() - started);
      } catch {
        this.errors++;
      }
    };
    const track = () => {
      const p = once().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    };
    this.timer = setInterval(track, this.intervalSeconds * 1000);
    track();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inFlight);
  }
}
