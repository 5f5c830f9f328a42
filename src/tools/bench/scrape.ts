/** Scrapes /metrics on an interval during a level and times each scrape. */
export class Scraper {
  private timer: NodeJS.Timeout | undefined;
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
    this.timer = setInterval(() => void once(), this.intervalSeconds * 1000);
    void once();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
