//go:build tools

package vmtest

// The guest initramfs is built from these commands by import path; the
// blank imports keep them, and the versions the tests were run with, in
// go.mod. The tools tag keeps them out of every build.
import (
	_ "github.com/hugelgupf/vmtest/vminit/shelluinit"
	_ "github.com/hugelgupf/vmtest/vminit/shutdownafter"
	_ "github.com/hugelgupf/vmtest/vminit/vmmount"
	_ "github.com/u-root/u-root/cmds/core/cat"
	_ "github.com/u-root/u-root/cmds/core/dd"
	_ "github.com/u-root/u-root/cmds/core/gosh"
	_ "github.com/u-root/u-root/cmds/core/grep"
	_ "github.com/u-root/u-root/cmds/core/init"
	_ "github.com/u-root/u-root/cmds/core/mkdir"
	_ "github.com/u-root/u-root/cmds/core/mount"
	_ "github.com/u-root/u-root/cmds/core/sleep"
	_ "github.com/u-root/u-root/cmds/core/sync"
	_ "github.com/u-root/u-root/cmds/core/umount"
)
