package acceptance

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

const module = "github.com/usersuccess/persona-operator/"

// helperPackage reports whether a package exists for tests only (or is a
// separate command under hack/): the layers do not constrain it.
func helperPackage(pkg string) bool {
	return strings.HasPrefix(pkg, "internal/testutil/") || strings.HasSuffix(pkg, "test") ||
		strings.HasPrefix(pkg, "test/") || strings.HasPrefix(pkg, "hack/")
}

// docLayers reads the layer table of docs/architecture.md: package → layer.
func docLayers(t *testing.T) map[string]int {
	t.Helper()
	data, err := os.ReadFile(cluster.RepoPath("docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`^\| (\d+)\. [^|]+\| ([^|]+) \|`)
	pkgs := regexp.MustCompile("`([a-z0-9/_-]+)`")
	aside := regexp.MustCompile(`\([^)]*\)`) // "(the plugin: ...)" names no member
	layers := map[string]int{}
	for _, line := range strings.Split(string(data), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		for _, p := range pkgs.FindAllStringSubmatch(aside.ReplaceAllString(m[2], ""), -1) {
			layers[p[1]] = n
		}
	}
	if len(layers) < 10 {
		t.Fatalf("docs/architecture.md: found %d packages in the layer table", len(layers))
	}
	return layers
}

// sourceImports returns, for every package under api/, cmd/ and internal/,
// the project packages its non-test files import.
func sourceImports(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	for _, top := range []string{"api", "cmd", "internal"} {
		err := filepath.WalkDir(cluster.RepoPath(top), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(cluster.RepoPath(), filepath.Dir(path))
			if err != nil {
				return err
			}
			pkg := filepath.ToSlash(rel)
			if out[pkg] == nil {
				out[pkg] = map[string]bool{}
			}
			for _, imp := range f.Imports {
				if p, ok := strings.CutPrefix(strings.Trim(imp.Path.Value, `"`), module); ok {
					out[pkg][p] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// The layer table of docs/architecture.md is the rule: every package is in
// it, and none imports a package of a higher layer or a test helper.
func TestPackagesKeepToTheDocumentedLayers(t *testing.T) {
	layers := docLayers(t)
	var problems []string
	for pkg, imports := range sourceImports(t) {
		if helperPackage(pkg) {
			continue
		}
		own, ok := layers[pkg]
		if !ok {
			problems = append(problems, pkg+": not in the layer table of docs/architecture.md")
			continue
		}
		for imp := range imports {
			l, known := layers[imp]
			switch {
			case helperPackage(imp):
				problems = append(problems, pkg+" imports the test helper "+imp)
			case known && l > own:
				problems = append(problems, pkg+" (layer "+strconv.Itoa(own)+") imports "+imp+" (layer "+strconv.Itoa(l)+")")
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}
