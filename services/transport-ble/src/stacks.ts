/**
 * The production stack loaders: noble and bleno imported on first use.
 *
 * @remarks
 * Importing either package opens nothing, but its native HCI binding is only usable on a machine
 * with a Bluetooth adapter; loading lazily keeps the service startable everywhere (see
 * `BleLinkDriver`, which retries). `withBindings('default')` picks the platform's binding (HCI
 * socket on Linux, CoreBluetooth on macOS, WinRT on Windows) and returns a fresh instance per call,
 * which the driver's retry relies on. Tests do not come here: they build the real `Noble`/`Bleno`
 * classes over fake bindings.
 */
import type { Bleno } from '@stoprocent/bleno';
import type { Noble } from '@stoprocent/noble';
import type { BleStackLoaders } from './ble-link-driver.js';

/** Loads noble (central) with the platform's default binding. */
export async function loadNoble(): Promise<Noble> {
  const noble = await import('@stoprocent/noble');
  return noble.withBindings('default');
}

/** Loads bleno (peripheral) with the platform's default binding. */
export async function loadBleno(): Promise<Bleno> {
  const bleno = await import('@stoprocent/bleno');
  return bleno.withBindings('default');
}

/** Loaders for the roles asked for. */
export function defaultStackLoaders(roles: {
  readonly central: boolean;
  readonly peripheral: boolean;
}): BleStackLoaders {
  return {
    ...(roles.central ? { central: loadNoble } : {}),
    ...(roles.peripheral ? { peripheral: loadBleno } : {}),
  };
}
