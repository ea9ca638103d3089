import { Global, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CompanyEventEntity, EventCounterEntity } from './company-event.entity.js';
import { EventsService } from './events.service.js';

@Global()
@Module({
  imports: [TypeOrmModule.forFeature([CompanyEventEntity, EventCounterEntity])],
  providers: [EventsService],
  exports: [EventsService],
})
export class EventsModule {}
