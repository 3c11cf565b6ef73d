package fuzzwatch

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

const importPath = "github.com/uvs-lb/uvs/internal/fuzzwatch"

// notYet lists fuzz targets, as "directory FuzzName", that may still run
// without Guard, each with the reason. An entry whose target is gone or now
// calls Guard fails the test, so the list only shrinks.
var notYet = map[string]string{
	"conntrack FuzzOps": "has its own watchdog (conntrack's watchdog); engineer #15-C is moving it to fuzzwatch",
}

// TestEveryFuzzTargetGuarded reads every _test.go file of the module and
// fails for each fuzz target whose fuzz function does not start a
// watchdog with `defer fuzzwatch.Guard(...)()`: a target without it passes
// while an input hangs.
func TestEveryFuzzTargetGuarded(t *testing.T) {
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the test is not at internal/fuzzwatch of the module: %v", err)
	}
	pkgs := map[string]map[string]*ast.File{} // directory → file name → file
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); path != root && err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		if pkgs[dir] == nil {
			pkgs[dir] = map[string]*ast.File{}
		}
		pkgs[dir][path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var targets []target
	for dir, files := range pkgs {
		targets = append(targets, check(fset, dir, files)...)
	}
	slices.SortFunc(targets, func(a, b target) int { return strings.Compare(a.pos, b.pos) })
	if len(targets) < 30 {
		t.Fatalf("found %d fuzz targets in the module; the walk is broken", len(targets))
	}
	seen := map[string]bool{}
	guarded := 0
	for _, x := range targets {
		key := filepath.ToSlash(x.dir) + " " + x.name
		seen[key] = true
		reason, exempt := notYet[key]
		switch {
		case x.problem == "" && exempt:
			t.Errorf("%s: %s calls fuzzwatch.Guard now: remove %q from notYet", x.pos, x.name, key)
		case x.problem == "":
			guarded++
		case exempt:
			t.Logf("%s: %s not guarded yet: %s", x.pos, x.name, reason)
		default:
			t.Errorf("%s: %s: %s; start the fuzz function with\n\tdefer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, func() string { return fmt.Sprintf(\"%%.200q\", input) })()", x.pos, x.name, x.problem)
		}
	}
	for key := range notYet {
		if !seen[key] {
			t.Errorf("notYet lists %q, which is no fuzz target of the module: remove it", key)
		}
	}
	t.Logf("%d fuzz targets, %d guarded", len(targets), guarded)
}

// target is one fuzz target and what is wrong with it ("" when guarded).
type target struct {
	dir, name, pos, problem string
}

// check finds the fuzz targets among one directory's test files.
func check(fset *token.FileSet, dir string, files map[string]*ast.File) []target {
	// Top-level functions by package name, for f.Fuzz(namedFunc).
	funcs := map[string]*ast.FuncDecl{}
	for _, f := range files {
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				funcs[f.Name.Name+"."+fd.Name.Name] = fd
			}
		}
	}
	var out []target
	for _, f := range files {
		local := guardName(f)
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !isFuzzTarget(fd) {
				continue
			}
			x := target{dir: dir, name: fd.Name.Name, pos: fset.Position(fd.Pos()).String()}
			x.problem = problem(fd, local, func(name string) *ast.FuncDecl { return funcs[f.Name.Name+"."+name] })
			out = append(out, x)
		}
	}
	return out
}

// guardName is how file f calls Guard: "fuzzwatch.Guard" under the
// package's name or its import alias, "Guard" for a dot import, "" when f
// does not import fuzzwatch.
func guardName(f *ast.File) string {
	for _, imp := range f.Imports {
		if p, err := strconv.Unquote(imp.Path.Value); err != nil || p != importPath {
			continue
		}
		switch {
		case imp.Name == nil:
			return "fuzzwatch.Guard"
		case imp.Name.Name == ".":
			return "Guard"
		case imp.Name.Name == "_":
			return ""
		default:
			return imp.Name.Name + ".Guard"
		}
	}
	return ""
}

// isFuzzTarget reports whether fd is a function go test runs as a fuzz
// target: FuzzXxx (Xxx not starting with a lower-case letter) taking a
// *testing.F.
func isFuzzTarget(fd *ast.FuncDecl) bool {
	if fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Fuzz") {
		return false
	}
	if rest := strings.TrimPrefix(fd.Name.Name, "Fuzz"); rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	ps := fd.Type.Params.List
	if len(ps) != 1 {
		return false
	}
	star, ok := ps[0].Type.(*ast.StarExpr)
	return ok && exprString(star.X) == "testing.F"
}

// problem says why the fuzz target fd is not guarded, or "" when every
// f.Fuzz call in it runs a function starting a deferred Guard. local is
// how the file calls Guard; lookup finds a top-level function of the
// package by name.
func problem(fd *ast.FuncDecl, local string, lookup func(string) *ast.FuncDecl) string {
	if local == "" {
		return "its file does not import " + importPath
	}
	var fname string
	if ns := fd.Type.Params.List[0].Names; len(ns) == 1 {
		fname = ns[0].Name
	}
	calls := 0
	var bad string
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		c, ok := n.(*ast.CallExpr)
		if !ok || bad != "" {
			return bad == ""
		}
		if fname == "" || exprString(c.Fun) != fname+".Fuzz" || len(c.Args) != 1 {
			return true
		}
		calls++
		var body *ast.BlockStmt
		switch fn := c.Args[0].(type) {
		case *ast.FuncLit:
			body = fn.Body
		case *ast.Ident:
			if d := lookup(fn.Name); d != nil {
				body = d.Body
			}
		}
		switch {
		case body == nil:
			bad = fmt.Sprintf("cannot read the function passed to %s.Fuzz", fname)
		case !defersGuard(body, local):
			bad = fmt.Sprintf("the function passed to %s.Fuzz does not defer %s(...)()", fname, local)
		}
		return false
	})
	if bad != "" {
		return bad
	}
	if calls == 0 {
		return "calls no f.Fuzz"
	}
	return ""
}

// defersGuard reports whether body, at its top level, has
// `defer <local>(...)()`: a Guard whose stop runs however the input ends.
func defersGuard(body *ast.BlockStmt, local string) bool {
	for _, s := range body.List {
		d, ok := s.(*ast.DeferStmt)
		if !ok || len(d.Call.Args) != 0 {
			continue
		}
		if g, ok := d.Call.Fun.(*ast.CallExpr); ok && exprString(g.Fun) == local {
			return true
		}
	}
	return false
}

// exprString spells an identifier or a selector chain ("a.b.c"); "" for
// anything else.
func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		if x := exprString(e.X); x != "" {
			return x + "." + e.Sel.Name
		}
	}
	return ""
}

// TestCheckerCatches runs the checker on made-up test files, so
// TestEveryFuzzTargetGuarded cannot pass by construction.
func TestCheckerCatches(t *testing.T) {
	const src = `package p

import (
	"testing"

	fw "github.com/uvs-lb/uvs/internal/fuzzwatch"
)

func FuzzGood(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fw.Guard(t, fw.DefaultLimit, nil)()
	})
}

func FuzzNamed(f *testing.F) { f.Fuzz(named) }

func named(t *testing.T, b []byte) {
	defer fw.Guard(t, fw.DefaultLimit, nil)()
}

func FuzzNoGuard(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {})
}

func FuzzNotDeferred(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		stop := fw.Guard(t, fw.DefaultLimit, nil)
		stop()
	})
}

func FuzzStopNotCalled(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fw.Guard(t, fw.DefaultLimit, nil)
	})
}

func FuzzNested(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		func() { defer fw.Guard(t, fw.DefaultLimit, nil)() }()
	})
}

func FuzzSecondUnguarded(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) { defer fw.Guard(t, fw.DefaultLimit, nil)() })
	f.Fuzz(func(t *testing.T, b []byte) {})
}

func FuzzNoFuzz(f *testing.F) {}

func Fuzzy(f *testing.F) {}

func FuzzNotTarget(t *testing.T) {}
`
	const other = `package p

import "testing"

func FuzzOtherFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		defer fuzzwatch.Guard(t, fuzzwatch.DefaultLimit, nil)()
	})
}
`
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	for name, s := range map[string]string{"a_test.go": src, "b_test.go": other} {
		f, err := parser.ParseFile(fset, name, s, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	got := map[string]bool{}
	for _, x := range check(fset, "p", files) {
		got[x.name] = x.problem == ""
	}
	want := map[string]bool{
		"FuzzGood":            true,
		"FuzzNamed":           true,
		"FuzzNoGuard":         false,
		"FuzzNotDeferred":     false,
		"FuzzStopNotCalled":   false,
		"FuzzNested":          false,
		"FuzzSecondUnguarded": false,
		"FuzzNoFuzz":          false,
		"FuzzOtherFile":       false, // its file does not import fuzzwatch
	}
	for name, ok := range want {
		if g, found := got[name]; !found {
			t.Errorf("%s: not seen as a fuzz target", name)
		} else if g != ok {
			t.Errorf("%s: guarded = %t, want %t", name, g, ok)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: seen as a fuzz target, which go test would not run", name)
		}
	}
}
