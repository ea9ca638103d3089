import { Body, Controller, Get, Module, Post, Query } from '@nestjs/common';
import { Type } from 'class-transformer';
import { Access } from '../../src/common/access/access.decorators.js';
import { IsInt, IsString, Length, Max, Min, ValidateNested } from 'class-validator';

class ProbeAddress {
  @IsString() @Length(2, 2) country!: string;
}

export class ProbeBody {
  @IsString() @Length(1, 20) name!: string;
  @IsInt() @Min(1) @Max(10) count!: number;
  @ValidateNested() @Type(() => ProbeAddress) address!: ProbeAddress;
}

/** Routes that exist only in tests, to drive the error paths of the real pipeline. */
@Controller('__probe')
@Access.public()
export class ProbeController {
  @Post('echo')
  echo(@Body() body: ProbeBody) {
    return { received: body };
  }

  @Get('boom')
  boom(): never {
    throw new Error(
      'relation "secret_table" does not exist: SELECT * FROM secret_table WHERE phone = \'+15551230001\'',
    );
  }

  @Get('slow')
  async slow(@Query('ms') ms = '300') {
    await new Promise((r) => setTimeout(r, Number(ms)));
    return { done: true };
  }
}

@Module({ controllers: [ProbeController] })
export class ProbeModule {}
