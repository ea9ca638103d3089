import { Injectable } from '@nestjs/common';

/**
 * Where this instance is in its life. A stop (SIGTERM/SIGINT, see server.ts) marks it draining
 * first: readiness answers 503 from then on, so that a load balancer sends new work elsewhere
 * while the requests already here finish.
 */
@Injectable()
export class LifecycleService {
  private drainingSince: Date | null = null;

  get draining(): boolean {
    return this.drainingSince !== null;
  }

  beginDrain(): void {
    this.drainingSince ??= new Date();
  }
}
