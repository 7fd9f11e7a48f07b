// The Pi OS kernel profile's load order: every removed module after what it needs, kept modules
// modprobed, unknown names ignored; modules.builtin gets the uncompressed paths.
import { describe, expect, it } from 'vitest';
import { builtinLines, builtinLoadOrder, parseModulesDep } from '../../test/image/pios-kernel-profile.ts';

const DEP = `kernel/drivers/usb/common/usb-common.ko.xz:
kernel/drivers/usb/core/usbcore.ko.xz: kernel/drivers/usb/common/usb-common.ko.xz
kernel/drivers/scsi/scsi_common.ko.xz:
kernel/drivers/scsi/scsi_mod.ko.xz: kernel/drivers/scsi/scsi_common.ko.xz
kernel/drivers/usb/storage/usb-storage.ko.xz: kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/usb/core/usbcore.ko.xz kernel/drivers/scsi/scsi_common.ko.xz kernel/drivers/usb/common/usb-common.ko.xz
kernel/drivers/usb/storage/uas.ko.xz: kernel/drivers/usb/storage/usb-storage.ko.xz kernel/drivers/scsi/scsi_mod.ko.xz kernel/drivers/usb/core/usbcore.ko.xz kernel/drivers/scsi/scsi_common.ko.xz kernel/drivers/usb/common/usb-common.ko.xz
kernel/drivers/md/dm-crypt.ko.xz: kernel/drivers/md/dm-mod.ko.xz
kernel/drivers/md/dm-mod.ko.xz:
`;

describe('Pi OS kernel profile', () => {
  it('orders removed modules after their dependencies and modprobes the kept ones', () => {
    const steps = builtinLoadOrder(parseModulesDep(DEP), ['uas', 'usb_storage', 'usbcore', 'usb_common', 'scsi_common', 'no_such_module']);
    const names = steps.map((s) => `${s.op} ${s.name}`);
    expect(names).toContain('modprobe scsi_mod');
    expect(names.filter((n) => n.startsWith('insmod')).sort()).toEqual(['insmod scsi_common', 'insmod uas', 'insmod usb_common', 'insmod usb_storage', 'insmod usbcore']);
    const at = (n: string) => names.findIndex((x) => x.endsWith(` ${n}`));
    expect(at('usb_common')).toBeLessThan(at('usbcore'));
    expect(at('scsi_mod')).toBeLessThan(at('usb_storage'));
    expect(at('usb_storage')).toBeLessThan(at('uas'));
    expect(names.some((n) => n.includes('dm_'))).toBe(false);
    expect(builtinLines(steps)).toContain('kernel/drivers/usb/storage/usb-storage.ko');
    expect(builtinLines(steps).some((l) => l.endsWith('.xz'))).toBe(false);
  });
});
