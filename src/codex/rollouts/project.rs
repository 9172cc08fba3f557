//! Which threads belong to a project: the thread's working directory is the project's
//! directory, inside it, or one of its parents (pure but for [`canonical`] and
//! [`project_root`], which look at the disk).

use std::path::{Path, PathBuf};

/// `path` with links and `..` resolved when it exists, else as given.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether a thread started in `session_cwd` belongs to the project at `dir`: the same
/// directory, one inside it, or one of its parents (a thread started at a repository's root
/// is about its sub-folders too).
pub fn related(session_cwd: &Path, dir: &Path) -> bool {
    session_cwd.starts_with(dir) || dir.starts_with(session_cwd)
}

/// The nearest folder at or above `cwd` holding `.git`, else `cwd` itself.
pub fn project_root(cwd: &Path) -> PathBuf {
    cwd.ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(cwd)
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_children_and_the_same_directory_match() {
        let here = Path::new("/home/u/work/app");
        assert!(related(Path::new("/home/u/work/app"), here));
        assert!(related(Path::new("/home/u/work"), here), "parent");
        assert!(related(Path::new("/home/u/work/app/src"), here), "child");
        assert!(
            !related(Path::new("/home/u/work/app2"), here),
            "whole components only"
        );
        assert!(!related(Path::new("/home/u/other"), here));
    }

    #[test]
    fn the_project_root_is_the_nearest_git_folder() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("a/b")).unwrap();
        assert_eq!(project_root(&repo.join("a/b")), repo);
        let loose = dir.path().join("loose");
        assert_eq!(project_root(&loose), loose);
    }
}
